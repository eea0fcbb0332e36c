//! plumewatch: a streaming analyzer for vehicle-emission enforcement.
//!
//! Roadside remote-sensing (RSD) passes, remote-OBD samples and plate reads flow through
//! `decode → enrich → detect → sink` into Hive-partitioned Parquet tables; DataFusion SQL
//! turns the tables into enforcement lists (`query`). See DESIGN.md in the shared folder and
//! README.md for the tour.
#![forbid(unsafe_code)]

pub mod decode;
pub mod demo;
pub mod detect;
pub mod enrich;
pub mod ingest;
pub mod inspect;
pub mod limits;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod position;
pub mod query;
pub mod run;
pub mod schema;
pub mod serve;
pub mod sink;
pub mod source;
pub mod synth;
pub mod time;
