//! HJ 1239 / GB 17691 Annex Q remote-monitoring frames: the sans-IO decoder lives in its own
//! workspace crate, `crates/hj1239` (framing/scanner, blocks, DTCs, time, the GB/T 32960 and
//! JT/T 808 recognisers, the test encoder); this module re-exports it so that
//! `plumewatch::decode::hj1239::…` keeps naming the same items.

pub use hj1239::*;
