//! Decoding: bytes of each input format into canonical field values (no I/O policy here).

pub mod batch;
pub mod csv;
pub mod fields;
pub mod hj1239;
pub mod mapping;
pub mod record;
pub mod text;
