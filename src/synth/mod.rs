//! Seeded generators of SYNTHETIC inputs (benchmarks, demo, tests).

pub mod rsd;
