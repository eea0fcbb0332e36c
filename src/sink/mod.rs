//! Sinks: Parquet tables written atomically.

pub mod keys;
pub mod manifest;
pub mod parquet;
pub mod tables;
