//! RSD reduction: molar ratios to CO2 → undiluted-exhaust concentrations, fuel-specific
//! emission factors (g per kg fuel) and VSP (`remote-sensing.md §4.2–§4.4`).

use crate::limits::{Reduction, VspCoefficients};

/// Molar masses, g/mol (`remote-sensing.md §4.3`).
pub mod molar_mass {
    pub const CO: f64 = 28.010;
    /// HC expressed as propane.
    pub const C3H8: f64 = 44.096;
    pub const NO: f64 = 30.010;
    /// NO and NO2 expressed as NO2 (the CONOX convention for `NO_gpkg`).
    pub const NO2: f64 = 46.006;
    pub const NH3: f64 = 17.031;
}

/// Concentrations "as a tailpipe probe would see" (`remote-sensing.md §4.2`, FEAT convention).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Concentrations {
    /// %CO2 = 42 / (2.79 + 2·Q).
    pub co2_pct: f64,
    /// %CO = Q · %CO2.
    pub co_pct: f64,
    /// HC ppm (propane, NDIR) = Q' · %CO2 · 10⁴ (Q' in mol/mol).
    pub hc_ppm: Option<f64>,
    /// NO ppm = Q'' · %CO2 · 10⁴.
    pub no_ppm: Option<f64>,
}

/// §4.2. `q_co` is CO/CO2 (mol/mol); HC and NO ratios are optional.
pub fn concentrations(q_co: f64, q_hc: Option<f64>, q_no: Option<f64>) -> Concentrations {
    let co2_pct = 42.0 / (2.79 + 2.0 * q_co);
    Concentrations {
        co2_pct,
        co_pct: q_co * co2_pct,
        hc_ppm: q_hc.map(|q| q * co2_pct * 1e4),
        no_ppm: q_no.map(|q| q * co2_pct * 1e4),
    }
}

/// Fuel-specific emission factors, g/kg fuel (`remote-sensing.md §4.3`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EmissionFactors {
    pub co_g_per_kg: Option<f64>,
    pub hc_g_per_kg: Option<f64>,
    /// NO mass expressed as NO2 (M = 46.006), the CONOX `NO_gpkg` convention.
    pub no_g_per_kg: Option<f64>,
    pub no2_g_per_kg: Option<f64>,
    pub nh3_g_per_kg: Option<f64>,
    /// NOx as NO2 = EF_NO(as NO2) + EF_NO2. Needs NO; NO2 counts as 0 when not measured only
    /// if `nox_needs_no2` is false (see [`emission_factors`]).
    pub nox_g_per_kg: Option<f64>,
}

/// Ratios to CO2 of one pass (mol/mol).
#[derive(Clone, Copy, Debug, Default)]
pub struct Ratios {
    pub co: Option<f64>,
    pub hc: Option<f64>,
    pub no: Option<f64>,
    pub no2: Option<f64>,
    pub nh3: Option<f64>,
}

/// Carbon balance, §4.3: `D = 1 + Q + RF·SF·Q'`, `EF_x = (M_x·1000/MF)·R_x / D`.
///
/// `mf` is the fuel mass per mole of carbon (g/mol C). A missing CO ratio gives no factors
/// (D is undefined); a missing HC ratio is taken as 0 in D (the caller flags the row), and
/// gives no HC factor. NOx is reported only when both NO and NO2 were measured.
pub fn emission_factors(r: &Ratios, mf: f64, c: &Reduction) -> EmissionFactors {
    let Some(q) = r.co else {
        return EmissionFactors::default();
    };
    let d = 1.0 + q + c.hc_response_factor * c.hc_carbon_atoms * r.hc.unwrap_or(0.0);
    let k = 1000.0 / mf / d;
    let no = r.no.map(|x| molar_mass::NO2 * k * x);
    let no2 = r.no2.map(|x| molar_mass::NO2 * k * x);
    EmissionFactors {
        co_g_per_kg: Some(molar_mass::CO * k * q),
        hc_g_per_kg: r
            .hc
            .map(|x| molar_mass::C3H8 * k * c.hc_response_factor * x),
        no_g_per_kg: no,
        no2_g_per_kg: no2,
        nh3_g_per_kg: r.nh3.map(|x| molar_mass::NH3 * k * x),
        nox_g_per_kg: match (no, no2) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        },
    }
}

/// VSP in kW/t (`remote-sensing.md §4.4`):
/// `VSP = v·(accel·a + grade·G + rolling) + aero·v³`, v = speed (m/s), a in m/s², G = grade
/// as a fraction (`road_grade_pct / 100`; 0 when unknown).
pub fn vsp_kw_t(
    speed_kmh: f64,
    accel_mps2: f64,
    road_grade_pct: Option<f64>,
    c: &VspCoefficients,
) -> f64 {
    let v = speed_kmh / 3.6;
    let g = road_grade_pct.unwrap_or(0.0) / 100.0;
    v * (c.accel_coef * accel_mps2 + c.grade_coef * g + c.rolling_coef) + c.aero_coef * v * v * v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::LimitSet;

    #[test]
    fn chinese_platform_record_reproduces() {
        // remote-sensing.md §4.2, Beijing record [S13]: CO 0.82 %, CO2 14.46 %:
        // Q = 0.82/14.46 = 0.05671 → %CO2 = 42/(2.79 + 0.11342) = 14.4656.
        let q = 0.82 / 14.46;
        let c = concentrations(q, Some(43.49e-4), Some(105.4e-4));
        assert!((c.co2_pct - 14.4656).abs() < 1e-3, "{}", c.co2_pct);
        assert!((c.co_pct - 0.8203).abs() < 1e-3);
        // hcjg 628.93 ppm, nojg 1524.37 ppm (ratio × %CO2).
        assert!((c.hc_ppm.unwrap() - 629.1).abs() < 1.0);
        assert!((c.no_ppm.unwrap() - 1524.7).abs() < 1.5);
    }

    #[test]
    fn worked_example_of_section_4_3() {
        // §4.3 worked example, MF = 14: Q' = 0.00435, Q'' = 0.01054 → gCO/kg ≈ 104.8,
        // gNO/kg ≈ 20.9 (NO as NO, M = 30.010). Hand: D = 1 + 0.05671 + 6·0.00435 = 1.08281;
        // CO = 28.010·1000/14·0.05671/1.08281 = 104.78; NO(as NO) = 30.010/46.006 × EF_NO(as NO2).
        let s = LimitSet::default_set();
        let r = Ratios {
            co: Some(0.82 / 14.46),
            hc: Some(0.00435),
            no: Some(0.01054),
            ..Default::default()
        };
        let ef = emission_factors(&r, 14.0, &s.reduction);
        assert!((ef.co_g_per_kg.unwrap() - 104.78).abs() < 0.05, "{:?}", ef);
        let no_as_no = ef.no_g_per_kg.unwrap() * molar_mass::NO / molar_mass::NO2;
        assert!((no_as_no - 20.87).abs() < 0.05, "{no_as_no}");
        assert!(ef.nox_g_per_kg.is_none());
    }

    #[test]
    fn vsp_matches_chinese_platform_record() {
        // §4.4: speed 46.81 km/h, accel 0.21 m/s², slope 0.2° → stored VSP 6.89 kW/t.
        let s = LimitSet::default_set();
        let grade_pct = 100.0 * 0.2f64.to_radians().tan();
        let v = vsp_kw_t(46.81, 0.21, Some(grade_pct), &s.vsp);
        assert!((v - 6.89).abs() < 0.02, "{v}");
    }
}
