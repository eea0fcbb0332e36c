//! Seeded generators of SYNTHETIC inputs (benchmarks, demo, tests).

pub mod obd;
pub mod obd_fleet;
pub mod rsd;
