//! The plate identity of one record (RSD pass, plate read, registry row): plate text and
//! colour normalised together by the one plate normaliser ([`crate::model::PlateText`]), the
//! flags saying what was done, and the registry join by plate + colour (DESIGN.md "Time,
//! plates and keys"; `remote-sensing.md §6`).
//!
//! What happens to each kind of plate / colour:
//! - control characters at the ends (NUL fill) are removed and flagged
//!   `plate_control_stripped`; inside the plate, or U+FFFD, or GBK mojibake → error (quarantine,
//!   field `plate`);
//! - a placeholder (`无车牌`, `...`, empty …) → plate NULL, status `no_plate`, raw text kept;
//! - a colour word before the plate (`蓝苏E9Z997`) → removed, flag `colour_prefix_stripped`,
//!   its colour used when the record has no colour field; a different explicit colour wins and
//!   flags `plate_colour_conflict`;
//! - an unknown colour word → `plate_color` NULL, `plate_color_raw` kept, flag
//!   `plate_color_unknown`, and no registry join;
//! - a green / yellow-green colour on a plate that is not 8 characters (or the reverse) →
//!   flag `plate_colour_length_mismatch`.

use crate::decode::record::FieldError;
use crate::enrich::registry::{Lookup, Registry, VehicleInfo};
use crate::model::{PlateColor, PlateStatus, PlateText};

/// Flags written to the `flags` column of the tables that store plates.
pub mod flag {
    /// Control characters (NUL fill …) removed from the ends of the plate.
    pub const PLATE_CONTROL_STRIPPED: &str = "plate_control_stripped";
    /// A colour word in front of the plate was removed (`蓝苏E9Z997` → `苏E9Z997`).
    pub const COLOUR_PREFIX_STRIPPED: &str = "colour_prefix_stripped";
    /// The colour word in front of the plate disagrees with the explicit colour field (the
    /// explicit field wins).
    pub const PLATE_COLOUR_CONFLICT: &str = "plate_colour_conflict";
    /// Plate colour text not understood: `plate_color` NULL, the text in `plate_color_raw`;
    /// the record is not joined to the registry.
    pub const PLATE_COLOR_UNKNOWN: &str = "plate_color_unknown";
    /// Green / yellow-green colour on a plate that is not a new-energy (8-character) plate,
    /// or another colour on a new-energy plate.
    pub const PLATE_COLOUR_LENGTH_MISMATCH: &str = "plate_colour_length_mismatch";
    /// The plate is registered in other colours only: not joined (another vehicle, or a
    /// misread colour); the conflict is shown, not resolved.
    pub const PLATE_COLOUR_REGISTRY_CONFLICT: &str = "plate_colour_registry_conflict";
    /// Joined on the plate number alone (no colour on the record or on file; the number is
    /// registered once): the colour is not confirmed.
    pub const PLATE_COLOUR_UNCONFIRMED: &str = "plate_colour_unconfirmed";
    /// No colour on the record and the plate number is registered in several colours: not
    /// joined.
    pub const PLATE_REGISTRY_AMBIGUOUS: &str = "plate_registry_ambiguous";
}

/// A registry join: the vehicle, and whether plate *and* colour matched.
#[derive(Clone, Copy, Debug)]
pub struct Joined<'r> {
    pub vehicle: &'r VehicleInfo,
    /// False when joined on the plate number alone (`plate_colour_unconfirmed`).
    pub colour_confirmed: bool,
}

/// Plate and colour of one record, normalised.
#[derive(Clone, Debug, PartialEq)]
pub struct PlateId {
    pub text: PlateText,
    /// Plate text as received, control characters escaped (`\u0000`); `None` without a field.
    pub raw: Option<String>,
    pub color: Option<PlateColor>,
    /// Colour text as received (after the mapping's value table).
    pub color_raw: Option<String>,
    pub flags: Vec<&'static str>,
}

/// Escapes control characters as `\uXXXX`, so no table or CSV ever holds a raw 0x00 byte.
pub fn escape_controls(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

impl PlateId {
    /// Normalises the plate and colour fields of one record. `placeholder`: the mapping
    /// marked the plate text as a "no plate" word (`Record::plate_placeholder`). Errors
    /// (field `plate`): see [`crate::model::PlateError`].
    pub fn from_fields(
        plate: Option<&str>,
        placeholder: bool,
        color: Option<&str>,
    ) -> Result<PlateId, FieldError> {
        let text = match plate {
            None => PlateText::no_plate(),
            Some(_) if placeholder => PlateText::no_plate(),
            Some(p) => {
                PlateText::parse(p).map_err(|e| FieldError::field("plate", e.to_string()))?
            }
        };
        let mut flags = Vec::new();
        if text.control_stripped > 0 {
            flags.push(flag::PLATE_CONTROL_STRIPPED);
        }
        if text.prefix_color.is_some() {
            flags.push(flag::COLOUR_PREFIX_STRIPPED);
        }
        // An empty colour cell is no colour (not an unknown one).
        let color = color.filter(|c| !c.trim().is_empty());
        let color_raw = color.map(|c| escape_controls(c.trim()));
        let explicit = color.map(PlateColor::parse);
        let color = match (explicit, text.prefix_color) {
            (Some(Some(c)), prefix) => {
                if prefix.is_some_and(|p| p != c) {
                    flags.push(flag::PLATE_COLOUR_CONFLICT);
                }
                Some(c)
            }
            (Some(None), _) => {
                flags.push(flag::PLATE_COLOR_UNKNOWN);
                None
            }
            (None, prefix) => prefix,
        };
        if let Some(c) = color
            && text.is_recognised()
            && text.colour_length_mismatch(c)
        {
            flags.push(flag::PLATE_COLOUR_LENGTH_MISMATCH);
        }
        Ok(PlateId {
            text,
            raw: plate.map(escape_controls),
            color,
            color_raw,
            flags,
        })
    }

    /// The normalised plate text (`None` for no plate).
    pub fn plate(&self) -> Option<&str> {
        self.text.plate.as_ref().map(|p| p.0.as_str())
    }

    /// Value of the `plate_status` column.
    pub fn status(&self) -> PlateStatus {
        self.text.status
    }

    /// Value of the `plate_class` column.
    pub fn class_str(&self) -> Option<&'static str> {
        self.text.class.map(|c| c.as_str())
    }

    /// Joins the registry by plate + colour and adds the flag saying why it did not join (or
    /// joined on the plate alone). Only recognised plates are joined; a record whose colour
    /// was given but not understood is never joined.
    pub fn join<'r>(&mut self, registry: &'r Registry) -> Option<Joined<'r>> {
        if !self.text.is_recognised() || self.flags.contains(&flag::PLATE_COLOR_UNKNOWN) {
            return None;
        }
        let plate = self.plate()?;
        match registry.lookup(plate, self.color) {
            Lookup::Matched(v) => Some(Joined {
                vehicle: v,
                colour_confirmed: true,
            }),
            Lookup::PlateOnly(v) => {
                self.flags.push(flag::PLATE_COLOUR_UNCONFIRMED);
                Some(Joined {
                    vehicle: v,
                    colour_confirmed: false,
                })
            }
            Lookup::NotRegistered => None,
            Lookup::ColourConflict => {
                self.flags.push(flag::PLATE_COLOUR_REGISTRY_CONFLICT);
                None
            }
            Lookup::Ambiguous => {
                self.flags.push(flag::PLATE_REGISTRY_AMBIGUOUS);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Fuel, PlateClass};

    fn id(p: &str, c: Option<&str>) -> PlateId {
        PlateId::from_fields(Some(p), false, c).unwrap()
    }

    fn vehicle(plate: &str, color: Option<PlateColor>, vin: &str) -> VehicleInfo {
        VehicleInfo {
            plate: plate.into(),
            plate_color: color,
            vin: Some(vin.into()),
            fuel: Some(Fuel::Diesel),
            emission_standard: Some(3),
            emission_standard_raw: None,
            vehicle_type: Some("H11".into()),
            registered_on: None,
        }
    }

    /// The plate columns are in every table that stores a plate, and the input schemas in
    /// `schemas/` document the same classes and statuses.
    #[test]
    fn schemas_agree_on_plate_columns() {
        use crate::schema;
        for s in [
            schema::rsd_passes(),
            schema::plate_reads(),
            schema::vehicles(),
        ] {
            for c in [
                "plate",
                "plate_status",
                "plate_raw",
                "plate_class",
                "plate_color",
                "plate_color_raw",
            ] {
                let f = s.field_with_name(c).unwrap();
                assert!(f.is_nullable() || c != "plate_raw", "{c}");
            }
        }
        assert!(
            schema::plate_reads()
                .field_with_name("plate")
                .unwrap()
                .is_nullable()
        );
        for (name, text) in [
            (
                "rsd_pass",
                include_str!("../../schemas/rsd_pass.schema.json"),
            ),
            (
                "plate_read",
                include_str!("../../schemas/plate_read.schema.json"),
            ),
            ("vehicle", include_str!("../../schemas/vehicle.schema.json")),
        ] {
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            let d = v["properties"]["plate"]["description"].as_str().unwrap();
            for c in PlateClass::ALL {
                assert!(d.contains(c.as_str()), "{name}: {}", c.as_str());
            }
            for s in [
                PlateStatus::Standard,
                PlateStatus::Nonstandard,
                PlateStatus::Unrecognised,
                PlateStatus::NoPlate,
            ] {
                assert!(d.contains(s.as_str()), "{name}: {}", s.as_str());
            }
            assert!(
                d.contains("plate_raw") && d.contains("plate_class"),
                "{name}"
            );
            let c = v["properties"]["plate_color"]["description"]
                .as_str()
                .unwrap();
            for col in [
                "blue",
                "yellow",
                "black",
                "white",
                "green",
                "yellow_green",
                "other",
            ] {
                assert!(c.contains(col), "{name}: {col}");
            }
        }
    }

    #[test]
    fn placeholder_prefix_and_conflict() {
        // Field case plate-placeholder-and-colour-prefix, n1–n7.
        for w in ["无车牌", "未识别", "无牌", "...", ""] {
            let p = id(w, None);
            assert_eq!(p.status(), PlateStatus::NoPlate, "{w}");
            assert_eq!(p.plate(), None);
            assert_eq!(p.raw.as_deref(), Some(w));
        }
        let p = id("蓝苏E9Z997", None);
        assert_eq!(p.plate(), Some("苏E9Z997"));
        assert_eq!(p.color, Some(PlateColor::Blue));
        assert_eq!(p.flags, vec![flag::COLOUR_PREFIX_STRIPPED]);
        assert_eq!(p.raw.as_deref(), Some("蓝苏E9Z997"));
        // Prefix 黄 vs explicit blue: the explicit field wins.
        let p = id("黄牌苏E9Z997", Some("blue"));
        assert_eq!(p.plate(), Some("苏E9Z997"));
        assert_eq!(p.color, Some(PlateColor::Blue));
        assert_eq!(
            p.flags,
            vec![flag::COLOUR_PREFIX_STRIPPED, flag::PLATE_COLOUR_CONFLICT]
        );
        // A mapping-marked placeholder word is no plate whatever it looks like.
        let p = PlateId::from_fields(Some("NO PLATE"), true, None).unwrap();
        assert_eq!(p.status(), PlateStatus::NoPlate);
        assert_eq!(p.raw.as_deref(), Some("NO PLATE"));
    }

    #[test]
    fn nul_fill_and_inner_controls() {
        // Field case plate-nul-padding r1 and r4.
        let p = id("京A12345\u{0}\u{0}\u{0}", Some("yellow"));
        assert_eq!(p.plate(), Some("京A12345"));
        assert_eq!(p.status(), PlateStatus::Standard);
        assert_eq!(p.text.control_stripped, 3);
        assert_eq!(p.flags, vec![flag::PLATE_CONTROL_STRIPPED]);
        assert_eq!(p.raw.as_deref(), Some("京A12345\\u0000\\u0000\\u0000"));
        let e = PlateId::from_fields(Some("京A\u{0}12345"), false, None).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("plate"));
        assert!(e.message.contains("U+0000 at character 2"), "{}", e.message);
        // A tab inside is a control character too.
        assert!(PlateId::from_fields(Some("京A1\t2345"), false, None).is_err());
        // r5: a valid emoji pair is kept, unrecognised.
        let p = id("京A12345\u{1F697}", Some("yellow"));
        assert_eq!(p.plate(), Some("京A12345\u{1F697}"));
        assert_eq!(p.status(), PlateStatus::Unrecognised);
    }

    #[test]
    fn colours_unknown_and_length() {
        // Field case plate-colour-unknown-plate-only-join r1: gradient green on 7 characters.
        let p = id("鄂F02277", Some("gradient_green"));
        assert_eq!(p.color, Some(PlateColor::Green));
        assert_eq!(p.flags, vec![flag::PLATE_COLOUR_LENGTH_MISMATCH]);
        let p = id("粤BD12345", Some("黄绿双拼"));
        assert_eq!(p.color, Some(PlateColor::YellowGreen));
        assert!(p.flags.is_empty());
        assert_eq!(p.text.class, Some(PlateClass::NewEnergy));
        // Blue on an 8-character new-energy plate.
        assert_eq!(
            id("京AD12345", Some("蓝")).flags,
            vec![flag::PLATE_COLOUR_LENGTH_MISMATCH]
        );
        // Unknown words and unmapped vendor codes are kept raw and flagged, never NULL alone.
        for c in ["purple", "5", "蓝白渐变"] {
            let p = id("京A12345", Some(c));
            assert_eq!(p.color, None);
            assert_eq!(p.color_raw.as_deref(), Some(c));
            assert_eq!(p.flags, vec![flag::PLATE_COLOR_UNKNOWN]);
        }
    }

    #[test]
    fn registry_join_by_plate_and_colour() {
        let mut reg = Registry::default();
        reg.insert(vehicle("鄂F02277", Some(PlateColor::Yellow), "V1"));
        reg.insert(vehicle("京A12345", Some(PlateColor::Yellow), "V2"));
        reg.insert(vehicle("京A12345", Some(PlateColor::Blue), "V3"));
        reg.insert(vehicle("沪B55555", None, "V4"));
        let vin =
            |j: Option<Joined<'_>>| j.map(|j| (j.vehicle.vin.clone().unwrap(), j.colour_confirmed));
        // Same colour: joined, confirmed.
        let mut p = id("鄂F02277", Some("yellow"));
        assert_eq!(vin(p.join(&reg)), Some(("V1".into(), true)));
        // Other colour: conflict, not joined.
        let mut p = id("鄂F02277", Some("gradient_green"));
        assert_eq!(vin(p.join(&reg)), None);
        assert!(p.flags.contains(&flag::PLATE_COLOUR_REGISTRY_CONFLICT));
        // Unknown colour: never joined.
        let mut p = id("鄂F02277", Some("magenta"));
        assert_eq!(vin(p.join(&reg)), None);
        // No colour, plate registered once: joined, colour not confirmed.
        let mut p = id("鄂F02277", None);
        assert_eq!(vin(p.join(&reg)), Some(("V1".into(), false)));
        assert!(p.flags.contains(&flag::PLATE_COLOUR_UNCONFIRMED));
        // No colour, plate registered in two colours: ambiguous, not joined.
        let mut p = id("京A12345", None);
        assert_eq!(vin(p.join(&reg)), None);
        assert!(p.flags.contains(&flag::PLATE_REGISTRY_AMBIGUOUS));
        let mut p = id("京A12345", Some("蓝"));
        assert_eq!(vin(p.join(&reg)), Some(("V3".into(), true)));
        // Colour given, none on file: the number alone, not confirmed.
        let mut p = id("沪B55555", Some("blue"));
        assert_eq!(vin(p.join(&reg)), Some(("V4".into(), false)));
        // No plate / unrecognised: never joined.
        let mut p = id("无车牌", None);
        assert!(p.join(&reg).is_none());
    }
}
