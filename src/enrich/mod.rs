//! Enrichment: registry join and the RSD reduction (concentrations, g/kg, VSP).

pub mod obd;
pub mod plate_id;
pub mod plate_reads;
pub mod reduce;
pub mod registry;
pub mod rsd;
pub mod vehicles;
