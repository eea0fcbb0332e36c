//! Domain types shared by every stream: plates, plate colours, fuels, emission standards.
//!
//! Parsing is forgiving where the source systems differ (codes, words, Chinese labels) and
//! strict where a wrong value would change a verdict: an unknown fuel is an error, a
//! non-standard plate is flagged, not rejected (`remote-sensing.md §6`).

use std::fmt;
use std::sync::OnceLock;

use regex::Regex;

/// How well a plate string matches the mainland format (`remote-sensing.md §6`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlateStatus {
    /// Matches the strict validator regex of §6.
    Standard,
    /// Matches only the permissive fallback `^[\p{Han}][A-Z][A-Z0-9挂学警港澳]{5,6}$`.
    Nonstandard,
    /// Matches neither (foreign plate, OCR garbage, partial read); kept, never rejected.
    Unrecognised,
}

impl PlateStatus {
    /// The value stored in the `plate_status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            PlateStatus::Standard => "standard",
            PlateStatus::Nonstandard => "nonstandard",
            PlateStatus::Unrecognised => "unrecognised",
        }
    }
}

/// A normalised licence plate: upper-case ASCII, full-width forms folded to half-width,
/// separators (space, `·`, `.`, `-`) removed. Example: `京a·12345` → `京A12345`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Plate(pub String);

fn strict_plate_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    // remote-sensing.md §6, strict validation regex (public validators' consensus [S30]).
    RE.get_or_init(|| {
        Regex::new(concat!(
            "^[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼使领][A-HJ-NP-Z]",
            "(?:[A-HJ-NP-Z0-9]{4}[A-HJ-NP-Z0-9挂学警港澳]|[DF][A-HJ-NP-Z0-9][0-9]{4}|[0-9]{5}[DF])$"
        ))
        .expect("static regex")
    })
}

fn fallback_plate_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    // remote-sensing.md §6, permissive fallback.
    RE.get_or_init(|| Regex::new(r"^\p{Han}[A-Z][A-Z0-9挂学警港澳]{5,6}$").expect("static regex"))
}

impl Plate {
    /// Normalises a raw plate read. Returns `None` for an empty string after cleaning.
    pub fn normalise(raw: &str) -> Option<Plate> {
        let mut out = String::with_capacity(raw.len());
        for c in raw.chars() {
            let c = match c {
                // Full-width ASCII block → half-width.
                '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
                _ => c,
            };
            if c.is_whitespace() || matches!(c, '·' | '•' | '.' | '-' | '_' | '\u{30FB}') {
                continue;
            }
            out.push(c.to_ascii_uppercase());
        }
        if out.is_empty() {
            None
        } else {
            Some(Plate(out))
        }
    }

    /// Classifies the plate against the §6 regexes.
    pub fn status(&self) -> PlateStatus {
        if strict_plate_re().is_match(&self.0) {
            PlateStatus::Standard
        } else if fallback_plate_re().is_match(&self.0) {
            PlateStatus::Nonstandard
        } else {
            PlateStatus::Unrecognised
        }
    }
}

impl fmt::Display for Plate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Plate colour, canonical names (`remote-sensing.md §6`). Source systems use different
/// numeric codes for the same colour; a column mapping's `values` table translates them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PlateColor {
    Blue,
    Yellow,
    Black,
    White,
    Green,
    YellowGreen,
    Other,
}

impl PlateColor {
    /// Accepts canonical English names and the Chinese labels (蓝, 黄, 黑, 白, 绿/渐变绿, 黄绿).
    /// Numeric codes are source-specific and must be mapped first (see `fixtures/mappings`).
    pub fn parse(s: &str) -> Option<PlateColor> {
        let t = s.trim();
        let lower = t.to_ascii_lowercase();
        Some(match lower.as_str() {
            "blue" | "蓝" | "蓝色" | "蓝底白字" => PlateColor::Blue,
            "yellow" | "黄" | "黄色" | "黄底黑字" => PlateColor::Yellow,
            "black" | "黑" | "黑色" | "黑底白字" => PlateColor::Black,
            "white" | "白" | "白色" | "白底黑字" => PlateColor::White,
            "green" | "绿" | "绿色" | "渐变绿" => PlateColor::Green,
            "yellow_green" | "yellow-green" | "黄绿" | "黄绿双拼" => PlateColor::YellowGreen,
            "other" | "其他" => PlateColor::Other,
            _ => return None,
        })
    }

    /// The value stored in `plate_color` columns.
    pub fn as_str(self) -> &'static str {
        match self {
            PlateColor::Blue => "blue",
            PlateColor::Yellow => "yellow",
            PlateColor::Black => "black",
            PlateColor::White => "white",
            PlateColor::Green => "green",
            PlateColor::YellowGreen => "yellow_green",
            PlateColor::Other => "other",
        }
    }
}

/// Fuel of a pass or a registered vehicle. Registry codes (`obd-remote-monitoring.md §5.1`):
/// A gasoline, B diesel, E natural gas, F LPG, O hybrid, C electric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fuel {
    Petrol,
    Diesel,
    NaturalGas,
    Lpg,
    HybridPetrol,
    HybridDiesel,
    Electric,
}

/// Ignition class that selects the RSD limit table (`remote-sensing.md §1–§3`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FuelClass {
    /// Diesel (HJ 845 / GB 3847 limits: opacity, Ringelmann, NO).
    CompressionIgnition,
    /// Petrol, natural gas, LPG (GB 18285 scope: CO, HC, NO).
    SparkIgnition,
    /// Battery electric: no tailpipe.
    None,
}

impl Fuel {
    /// Parses canonical names, registry codes and common vendor words (case-insensitive).
    /// Errors with the offending text when nothing matches.
    pub fn parse(s: &str) -> Result<Fuel, String> {
        let t = s.trim();
        let lower = t.to_ascii_lowercase();
        Ok(match lower.as_str() {
            "petrol" | "gasoline" | "a" | "汽油" => Fuel::Petrol,
            "diesel" | "b" | "柴油" => Fuel::Diesel,
            "natural_gas" | "natural gas" | "ng" | "cng" | "lng" | "e" | "天然气" => {
                Fuel::NaturalGas
            }
            "lpg" | "f" | "液化石油气" => Fuel::Lpg,
            "hybrid_petrol" | "hybrid petrol/electric" | "o" | "混合动力" => Fuel::HybridPetrol,
            "hybrid_diesel" | "hybrid diesel/electric" => Fuel::HybridDiesel,
            "electric" | "c" | "电" | "纯电动" => Fuel::Electric,
            _ => return Err(format!("unknown fuel '{t}'")),
        })
    }

    /// Canonical name stored in `fuel` columns; also the key of the limit set's `[fuels]` table.
    pub fn as_str(self) -> &'static str {
        match self {
            Fuel::Petrol => "petrol",
            Fuel::Diesel => "diesel",
            Fuel::NaturalGas => "natural_gas",
            Fuel::Lpg => "lpg",
            Fuel::HybridPetrol => "hybrid_petrol",
            Fuel::HybridDiesel => "hybrid_diesel",
            Fuel::Electric => "electric",
        }
    }

    /// The ignition class that selects limits and validity windows.
    pub fn class(self) -> FuelClass {
        match self {
            Fuel::Diesel | Fuel::HybridDiesel => FuelClass::CompressionIgnition,
            Fuel::Petrol | Fuel::NaturalGas | Fuel::Lpg | Fuel::HybridPetrol => {
                FuelClass::SparkIgnition
            }
            Fuel::Electric => FuelClass::None,
        }
    }
}

/// Chinese vehicle emission stage (国I … 国VI), as a number 0–6 (0 = pre-China I).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct EmissionStandard(pub u8);

impl EmissionStandard {
    /// Accepts `III`, `3`, `国III`, `国3`, `国Ⅲ`, `China III`, `CN3`, `China 6b` (sub-stage
    /// letters are dropped). Returns `None` for anything else. The registry field's format
    /// in police/MEE records is unconfirmed (`obd-remote-monitoring.md §5.1`).
    pub fn parse(s: &str) -> Option<EmissionStandard> {
        let mut t = s.trim().to_ascii_uppercase();
        for prefix in ["CHINA", "CN", "国", "GB", "STAGE"] {
            if let Some(rest) = t.strip_prefix(prefix) {
                t = rest.trim().to_string();
            }
        }
        let t = t.trim_end_matches(['A', 'B']).trim();
        let n = match t {
            "0" => 0,
            "I" | "Ⅰ" | "1" => 1,
            "II" | "Ⅱ" | "2" => 2,
            "III" | "Ⅲ" | "3" => 3,
            "IV" | "Ⅳ" | "4" => 4,
            "V" | "Ⅴ" | "5" => 5,
            "VI" | "Ⅵ" | "6" => 6,
            _ => return None,
        };
        Some(EmissionStandard(n))
    }
}

/// GA 802 vehicle-type code class (`obd-remote-monitoring.md §5.1`): H1x/Q1x heavy,
/// H2x/Q2x medium trucks and tractors; Z51 heavy special-purpose.
pub fn is_medium_or_heavy_truck(ga802: &str) -> bool {
    let t = ga802.trim().to_ascii_uppercase();
    let b = t.as_bytes();
    if b.len() != 3 {
        return false;
    }
    matches!(
        (b[0], b[1]),
        (b'H', b'1') | (b'H', b'2') | (b'Q', b'1') | (b'Q', b'2')
    ) || t == "Z51"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plates_normalise_and_classify() {
        let p = Plate::normalise(" 京a·12345 ").unwrap();
        assert_eq!(p.0, "京A12345");
        assert_eq!(p.status(), PlateStatus::Standard);
        // Full-width letters and digits fold to ASCII.
        let p = Plate::normalise("冀Ｂ１２３４挂").unwrap();
        assert_eq!(p.0, "冀B1234挂");
        assert_eq!(p.status(), PlateStatus::Standard);
        // Large NEV: 5 digits + D/F.
        assert_eq!(
            Plate::normalise("粤B12345D").unwrap().status(),
            PlateStatus::Standard
        );
        // Letter I is not issued: fails strict, passes fallback.
        assert_eq!(
            Plate::normalise("京AI2345").unwrap().status(),
            PlateStatus::Nonstandard
        );
        assert_eq!(
            Plate::normalise("AB12CDE").unwrap().status(),
            PlateStatus::Unrecognised
        );
        assert!(Plate::normalise(" - ").is_none());
    }

    #[test]
    fn fuels_and_standards_parse() {
        assert_eq!(Fuel::parse("B").unwrap(), Fuel::Diesel);
        assert_eq!(Fuel::parse("DIESEL").unwrap(), Fuel::Diesel);
        assert_eq!(Fuel::parse("E").unwrap().class(), FuelClass::SparkIgnition);
        assert!(Fuel::parse("KEROSENE").unwrap_err().contains("KEROSENE"));
        assert_eq!(EmissionStandard::parse("国Ⅲ"), Some(EmissionStandard(3)));
        assert_eq!(
            EmissionStandard::parse("China VIb"),
            Some(EmissionStandard(6))
        );
        assert_eq!(EmissionStandard::parse("iv"), Some(EmissionStandard(4)));
        assert_eq!(EmissionStandard::parse("x"), None);
        assert!(is_medium_or_heavy_truck("H11"));
        assert!(is_medium_or_heavy_truck("q21"));
        assert!(!is_medium_or_heavy_truck("K33"));
    }
}
