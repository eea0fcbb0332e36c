//! Sinks: Parquet tables written atomically.

pub mod parquet;
