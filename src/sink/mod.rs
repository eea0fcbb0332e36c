//! Sinks: Parquet tables written atomically.

pub mod manifest;
pub mod parquet;
pub mod tables;
